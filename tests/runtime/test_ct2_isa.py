"""The ct2 engine lets CTranslate2 use AVX-512 wherever the CPU has it, and only then."""

import pytest

from transduce.runtime.ct2 import prefer_avx512

AMD = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl\n"


@pytest.mark.parametrize(
    ("cpuinfo", "environ", "expected"),
    [
        (AMD, {}, "AVX512"),
        (AMD.replace(" avx512bw", ""), {}, None),  # not the whole AVX-512 set
        ("flags\t\t: fpu avx avx2\n", {}, None),
        (AMD, {"CT2_FORCE_CPU_ISA": "AVX2"}, "AVX2"),  # the user's choice stands
        (None, {}, None),  # no /proc/cpuinfo
    ],
)
def test_avx512_is_forced_only_where_the_cpu_has_it(tmp_path, cpuinfo, environ, expected):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    changed = prefer_avx512(environ, str(path))
    assert environ.get("CT2_FORCE_CPU_ISA") == expected
    assert changed == (expected == "AVX512")

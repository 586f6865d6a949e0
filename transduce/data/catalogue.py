"""The corpora the recipes use: where each file comes from, its pinned SHA-256, its terms.

Every checksum is of a file exactly as the recipes read it (``$TRANSDUCE_DATA/<dest>``) and
matches the copies this project's README figures were measured on. Every source URL is
pinned to a commit, so the bytes behind a checksum cannot change. Two files are stored
recompressed (``gzip=True``): their checksum is of the text inside, because gzip output
differs between implementations. Tests pass their own :class:`Dataset` values to
:func:`transduce.data.download.get`; nothing here can be changed at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GITHUB = "https://raw.githubusercontent.com"
MULTI30K = f"{GITHUB}/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a"
M4 = f"{GITHUB}/Mcompetitions/M4-methods/6c1067e5a57161249b17289a565178dc7a3fb3ca"
CHATTERBOT = f"{GITHUB}/gunthercox/chatterbot-corpus/a01efece26661309b870af0251d96f94ee09fb19"
ELL = (
    f"{GITHUB}/PaschalisAg/english_to_greek_ML_trans_project"
    "/32c93d8f0f59598a5a9558786d95041b3de696f0"
)
FRA = f"{GITHUB}/modelexlab/data/adddaf33ac35572bcfeb421efec29435e7ea9332"
SPA = f"{GITHUB}/Hoangduc212001/hoang/2cfd26f9551f5c2d614e8000500891801840a438"
MANYTHINGS = "https://www.manythings.org/anki"
# WMT14 en-de as pre-processed (tokenized) by Luong et al. 2015 (4.5M pairs).
WMT14 = "https://nlp.stanford.edu/projects/nmt/data/wmt14.en-de"
# Entries whose checksums could not be verified here (no download possible): installed and
# their SHA-256 printed, never checked; fill the checksums in from a verified download.
UNVERIFIED = frozenset({"wmt14-en-de"})
_WMT14_FILES = (
    "train.en",
    "train.de",
    "newstest2013.en",
    "newstest2013.de",
    "newstest2014.en",
    "newstest2014.de",
)


@dataclass(frozen=True)
class DataFile:
    """One file under the data root.

    ``url`` is the file itself, or the zip archive that holds it as ``member``. ``sha256``
    is of the file as stored under ``dest`` (of the text inside when ``gzip``), or ``None``
    where nothing is pinned (a Tatoeba language this project has not checked).
    ``archive_sha256`` is the archive's own checksum where it is known; members are always
    checked, so a re-zipped copy with the same members installs from ``--from``.
    """

    dest: str
    url: str
    sha256: str | None
    size: int = 0
    member: str | None = None
    gzip: bool = False
    archive_sha256: str | None = None
    max_bytes: int | None = None  # the most an install may write (default: see .cap)

    @property
    def cap(self) -> int:
        """Bytes this file may take once extracted: a zip that inflates past it (the
        declared sizes are checked before extracting, the bytes while copying) is refused.
        An unpinned file (no size known) gets UNPINNED_CAP."""
        if self.max_bytes is not None:
            return self.max_bytes
        return max(self.size * 16, 16 << 20) if self.size else UNPINNED_CAP


# Tatoeba's largest language pairs hold a few hundred thousand lines (tens of MB).
UNPINNED_CAP = 64 << 20


@dataclass(frozen=True)
class Dataset:
    """A named group of files: what ``transduce data get NAME`` installs."""

    name: str
    description: str
    license: str
    source: str
    recipes: tuple[str, ...]
    files: tuple[DataFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


# sha256, size in bytes, file name: as `sha256sum` prints them
_MULTI30K = """
200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1   22572 test_2016_flickr.cs.gz
9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8   22890 test_2016_flickr.de.gz
611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9   21077 test_2016_flickr.en.gz
6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90   22310 test_2016_flickr.fr.gz
a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee   21471 test_2017_flickr.de.gz
76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074   19138 test_2017_flickr.en.gz
3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496   20434 test_2017_flickr.fr.gz
799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338   10230 test_2017_mscoco.de.gz
aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58    8844 test_2017_mscoco.en.gz
754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0    9751 test_2017_mscoco.fr.gz
7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2   25181 test_2018_flickr.cs.gz
ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608   26461 test_2018_flickr.de.gz
ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d   23514 test_2018_flickr.en.gz
fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501   25321 test_2018_flickr.fr.gz
a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077  593827 train.cs.gz
726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6  637044 train.de.gz
d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f  568929 train.en.gz
622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c  604242 train.fr.gz
b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc   22096 val.cs.gz
f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a   24681 val.de.gz
14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28   21650 val.en.gz
ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9   23001 val.fr.gz
"""

_CHATTERBOT = """
620a65787a56641db4a03e1419a7578e813967218cf6721e3ea4ef90844916aa    8340 ai.yml
1a694c5288f3f8f87d027d2f98dae71d02efa88e28853a6e5d27e6dbce907294    1385 botprofile.yml
0de8d7d7e6095164c59d7b0ef97c402c770c2d7982f485ab372dc6736c1a4e79   64011 coding.yml
a222c5a432efe4289e6c5edf1c3d99fd26c48df99db0ff893d1d5ab569f5b750    3744 computers.yml
1cf105b5802f377b2dc145f741f7df85629c9ca27e450538165286a75b5e3416    4682 conversations.yml
510a018938c1880dd0f67e1ae458e26878c91a570daef5a84fb83713c89f0989   10337 emotion.yml
68eab2497721d03044d520b70c27d8a0d8ba8e505b3265fb3a1ff3e1a64c7124    1266 food.yml
d6f1b1613ed70821fc1c427bdd00395f58b77ff57d76fbe4ab8cb2038cf15c9b    2119 gossip.yml
0dd7eb8dcee8e2a38cd1a137bcfbd7f3eb732cddfa1bd396fac5a24b063a4d55    1035 greetings.yml
eb88edc5302d688ca096374c7e3f5b9d7cd821f053a17d80204c4acdc20ea4f5     201 health.yml
0ff4beeb6ef9b641dc12e1039a149c6a03eb8f2e183702fad2b0997fcc1d63e3     795 history.yml
d2aa03a63f0e8e054589f642788afbc41b8c76f5d734c50901a9a63b359ea06b    3522 humor.yml
9361ff1478273d811259ca307a1e6be23a5e08e776a5bc5d9524fb13deb886f1    4077 literature.yml
2911d9766625ff5c2feb3d784f2951b2ebd5e9658547efce7568d0282c49274b    2375 money.yml
075ca9d91a527206c635c88bf0353323826a25a6f2057be1bc71888af389f842    1387 movies.yml
c436d5efedea6f715a8a811423a8edf396097771eb11e43b1f0a43a6aee7c2f0    1399 politics.yml
5047c211d35f715af4fbc3398f111135e99d34afcd0905a661c40bdeb1413a58    4227 psychology.yml
3c259799bba36c67a1601fc264ec01ab051e9e63950734ce1ef644e022081fe7    2397 science.yml
8d1bcc632cad4058e3b8490daa15dcd7c2a51790a7b9140b252600b794590403    2113 sports.yml
8a87cdf32579c8efdd9c5f3ef166ae9fb76dcf271b958f5e2265b9246b430655   97407 tech_support.yml
3a9de77e6d82803d1ea3eba48cf6543c884908f4c4f50501fed69f88112994dc   19836 trivia.yml
"""


def _table(text: str, dest: str, url: str) -> tuple[DataFile, ...]:
    rows = (line.split() for line in text.strip().splitlines())
    return tuple(DataFile(f"{dest}/{n}", f"{url}/{n}", sha, int(size)) for sha, size, n in rows)


_TATOEBA_TERMS = (
    "CC-BY 2.0 (France); attribution: tatoeba.org and www.manythings.org/anki "
    "(the sentences contain errors, says the source)"
)


def _anki(
    code: str, language: str, zip_url: str, zip_sha: str, text: tuple[str, int], about: str
) -> Dataset:
    """A pinned copy of manythings.org's ``<code>-eng.zip``: the text (stored gzipped; the
    checksum and size ``text`` are of the text and the .gz) and the archive's ``_about.txt``
    (its license and attribution)."""
    folder = f"{code}-eng"
    return Dataset(
        name=f"tatoeba-{code}",
        description=f"Tatoeba English-{language} pairs, manythings.org Anki format (2 columns)",
        license=_TATOEBA_TERMS,
        source=zip_url,
        recipes=(),
        files=(
            DataFile(
                f"tatoeba/{code}.txt.gz",
                zip_url,
                text[0],
                text[1],
                member=f"{folder}/{code}.txt",
                gzip=True,
                archive_sha256=zip_sha,
            ),
            DataFile(
                f"tatoeba/{folder}_about.txt",
                zip_url,
                about,
                1441,
                member=f"{folder}/_about.txt",
                archive_sha256=zip_sha,
            ),
        ),
    )


_M30K_RECIPES = ("multi30k_*.yaml", "qa_multi30k.yaml", "headline_multi30k.yaml")

CATALOGUE: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="multi30k",
            description="Multi30k task 1, raw sentences en/de/fr/cs: train, val, test 2016-2018",
            license=(
                "no license file; for non-commercial research and education (Flickr30K "
                "terms); cite Elliott et al. 2016, 2017 and Barrault et al. 2018"
            ),
            source=f"{MULTI30K}/data/task1/raw",
            recipes=_M30K_RECIPES,
            files=_table(_MULTI30K, "multi30k", f"{MULTI30K}/data/task1/raw"),
        ),
        Dataset(
            name="tatoeba-ell",
            description="Tatoeba English-Greek pairs, manythings.org Anki format (3 columns)",
            license=_TATOEBA_TERMS + "; per-line attribution in column 3",
            source=f"{ELL}/data/ell.txt",
            recipes=("tatoeba_char_ell.yaml",),
            files=(
                DataFile(
                    "tatoeba/ell.txt",
                    f"{ELL}/data/ell.txt",
                    "5649aade21ede6ffcb67a1f74c84ab0e8a91e8f5aed66442e38a8c1f5636ee95",
                    2603347,
                ),
            ),
        ),
        _anki(
            "fra",
            "French",
            f"{FRA}/fra-eng.zip",
            "161c93f18da3a7e6df611ed961426613260de8af06ccf8c79c977afe5135ac44",
            ("0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104", 3411914),
            "79f39a53dbddaf7ab43c801f231089174a611f23987244056f9e3cb5aa79358b",
        ),
        _anki(
            "spa",
            "Spanish",
            f"{SPA}/spa-eng.zip",
            "f80e581ae291aa34dd3aba7bd98b5e9505234da4318e2f3295df70a1520c7f61",
            ("6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c", 2778306),
            "df6f57ec7e6d9b31e2b9c8b6a4e0bea4aebe0a408a8e7fb24ae217e37ef4e92f",
        ),
        Dataset(
            name="m4-hourly",
            description="M4 competition Hourly series: 414 train rows, 48-step test",
            license=(
                "no license stated; cite Makridakis, Spiliotis & Assimakopoulos (2020), "
                "Int. J. Forecasting 36(1)"
            ),
            source=f"{M4}/Dataset",
            recipes=("m4_hourly.yaml",),
            files=(
                DataFile(
                    "m4/Hourly-train.csv",
                    f"{M4}/Dataset/Train/Hourly-train.csv",
                    "ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f",
                    2347115,
                ),
                DataFile(
                    "m4/Hourly-test.csv",
                    f"{M4}/Dataset/Test/Hourly-test.csv",
                    "71a57fccb15e534d973626ada4fb87febf789e9317715b7cc6dd3b5f90db6f42",
                    132820,
                ),
            ),
        ),
        Dataset(
            name="chatterbot",
            description="chatterbot-corpus English dialogue YAML files (21) and the license",
            license="BSD-3-Clause, (c) 2017 Gunther Cox; user-contributed content",
            source=f"{CHATTERBOT}/chatterbot_corpus/data/english",
            recipes=("dialog_chatterbot.yaml",),
            files=(
                *_table(
                    _CHATTERBOT,
                    "dialog/chatterbot-corpus-english",
                    f"{CHATTERBOT}/chatterbot_corpus/data/english",
                ),
                DataFile(
                    "dialog/chatterbot-corpus-LICENSE.md",
                    f"{CHATTERBOT}/license.md",
                    "a3ef744f9a7ddfb090596aeabe99c145adfe0d14f3eafdfb6a70207caded8aea",
                    1476,
                ),
            ),
        ),
        Dataset(
            name="wmt14-en-de",
            description=(
                "WMT14 English-German, 4.5M training pairs, newstest2013 (valid) and "
                "newstest2014 (test), tokenized by the Stanford NLP group; CHECKSUMS NOT "
                "PINNED: not downloadable where this entry was written, so each file's "
                "SHA-256 is printed, not checked"
            ),
            license=(
                "WMT14 shared task data (Europarl, Common Crawl, News Commentary: research "
                "use); cite Bojar et al. 2014 and Luong, Pham & Manning 2015"
            ),
            source=WMT14,
            recipes=("wmt14_en_de_transformer_base.yaml",),
            files=tuple(DataFile(f"wmt14-en-de/{n}", f"{WMT14}/{n}", None) for n in _WMT14_FILES),
        ),
    )
}


def lookup(name: str, catalogue: dict[str, Dataset] | None = None) -> Dataset:
    """The dataset called ``name``; ``tatoeba-<code>`` for a language not in the catalogue
    is manythings.org's current ``<code>-eng.zip``, unpinned (its checksum is printed)."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    if name in catalogue:
        return catalogue[name]
    match = re.fullmatch(r"tatoeba-([a-z]{3})", name)
    if match is None:
        known = ", ".join([*catalogue, "tatoeba-<code>"])
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise KeyError(f"no dataset {shown!r}; known: {known}")
    code = match.group(1)
    url = f"{MANYTHINGS}/{code}-eng.zip"
    return Dataset(
        name=name,
        description=f"Tatoeba English-{code} pairs, manythings.org's current release (unpinned)",
        license=_TATOEBA_TERMS,
        source=url,
        recipes=(),
        files=(
            DataFile(f"tatoeba/{code}.txt", url, None, member=f"{code}.txt"),
            DataFile(f"tatoeba/{code}-eng_about.txt", url, None, member="_about.txt"),
        ),
    )


def dataset_for(path: str) -> str | None:
    """The dataset whose ``transduce data get NAME`` installs ``path`` (a file under the
    data root, or any path ending in a catalogued destination), or None."""
    norm = str(path).replace("\\", "/")
    for dataset in CATALOGUE.values():
        for f in dataset.files:
            if norm.endswith("/" + f.dest) or norm == f.dest:
                return dataset.name
    match = re.search(r"(?:^|/)tatoeba/([a-z]{3})\.txt(\.gz)?$", norm)
    return f"tatoeba-{match.group(1)}" if match else None

"""Inference: the search core (greedy, beam, sampling) against the step
contract, the decoding options, and the text-decoding path every engine shares."""

"""``python -m failing_processing ARGS``: kafka-micro with a bug in its processing.

Processing raises for the sequence numbers listed in FAILING_SEQUENCES (comma-separated), as a
bug would: the consumer must dead-letter those messages (reason processing-error), and once the
bug is gone (the real ``kafka_micro``), replaying them must process them.
"""

import os
import sys

from kafka_micro import cli, processing
from kafka_micro.message import value_decoder

FAILING = {int(sequence) for sequence in os.environ["FAILING_SEQUENCES"].split(",")}


def decoder_with_a_bug(max_value_bytes):
    decode = value_decoder(max_value_bytes)

    def decode_or_fail(value):
        decoded = decode(value)
        if decoded[1] in FAILING:
            raise RuntimeError(f"bug: cannot process sequence {decoded[1]}")
        return decoded

    return decode_or_fail


processing.value_decoder = decoder_with_a_bug
sys.exit(cli.main())

"""Summarises the consumers' records on one app host as JSON ranges, small enough to carry.

Each record line is ``PRODUCER SEQUENCE PARTITION OFFSET`` (``kafka-micro consume --record``).
Prints ``{producer: {"ranges": [[first, last], ...], "records": n}}``: for each producer named on
the command line, the sequence numbers processed as merged ranges, and how many records name it
(more than the ranges hold where a message was processed again). Runs with the host's own python3.
Usage: python3 record_summary.py RECORD_DIR [PRODUCER ...]
"""

import json
import sys
from pathlib import Path


def merged(values):
    ranges = []
    for value in sorted(values):
        if ranges and value <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], value)
        else:
            ranges.append([value, value])
    return ranges


def main(record_dir, producers):
    sequences = {producer: set() for producer in producers}
    records = dict.fromkeys(producers, 0)
    for path in sorted(Path(record_dir).glob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = line.split()
                if len(fields) != 4:
                    continue
                producer, sequence = fields[:2]
                if producer in sequences:
                    sequences[producer].add(int(sequence))
                    records[producer] += 1
    print(
        json.dumps(
            {
                producer: {"ranges": merged(found), "records": records[producer]}
                for producer, found in sequences.items()
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

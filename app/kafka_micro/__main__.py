"""``python -m kafka_micro`` runs the ``kafka-micro`` command line."""

import sys

from kafka_micro.cli import main

sys.exit(main())

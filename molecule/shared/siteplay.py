"""Runs playbooks/site.yml against the molecule instances, as the converge step does."""

import os
import subprocess

INVENTORY = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
SITE = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", "site.yml")
# Colour codes would split the messages the tests look for.
PLAIN_OUTPUT = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}


def command(*args, inventory=INVENTORY):
    return ["ansible-playbook", "-i", inventory, SITE, *args]


def run_site(*args, inventory=INVENTORY):
    """Run to the end; the completed process, output captured."""
    return subprocess.run(
        command(*args, inventory=inventory),
        capture_output=True,
        text=True,
        env=PLAIN_OUTPUT,
        timeout=900,
        check=False,
    )


def start_site(*args):
    """Start a run in a process group of its own, so that a test can kill it midway."""
    return subprocess.Popen(
        command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=PLAIN_OUTPUT,
        start_new_session=True,
    )

"""Runs playbooks/site.yml (or another playbook) against the molecule instances, as the converge
step does."""

import os
import re
import subprocess

INVENTORY = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
PLAYBOOKS = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks")
# Colour codes would split the messages the tests look for.
PLAIN_OUTPUT = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}


def command(*args, inventory=INVENTORY, playbook="site.yml"):
    return ["ansible-playbook", "-i", inventory, os.path.join(PLAYBOOKS, playbook), *args]


def run_site(*args, inventory=INVENTORY, playbook="site.yml", timeout=900):
    """Run to the end; the completed process, output captured."""
    return subprocess.run(
        command(*args, inventory=inventory, playbook=playbook),
        capture_output=True,
        text=True,
        env=PLAIN_OUTPUT,
        timeout=timeout,
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


def rolled_one_at_a_time(output, nodes):
    """Whether a site.yml run's output restarted each of ``nodes`` once, each followed by its
    health wait before the next restart (confluent_kafka's rolling restart)."""
    names = "|".join(map(re.escape, nodes))
    steps = re.findall(rf"(Restart Kafka on|node) ({names})\]", output)
    restarts = [node for kind, node in steps if kind == "Restart Kafka on"]
    if sorted(restarts) != sorted(nodes):
        return False
    return all(
        steps.index(("node", node)) == steps.index(("Restart Kafka on", node)) + 1
        for node in restarts
    )

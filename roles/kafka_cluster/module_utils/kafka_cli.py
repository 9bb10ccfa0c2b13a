"""Kafka's own command line tools, run by the kafka-micro modules against one cluster.

Shared by kafka_topic, kafka_scram_users and kafka_acls: finding the tools, bounding their run
time, summing up their errors, and keeping secrets off command lines.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

_TIMEOUT_EXIT_CODE = 124
# The last line of a tool script: exec .../kafka-run-class[.sh] MAIN.CLASS "$@"
_MAIN_CLASS = re.compile(r'kafka-run-class(?:\.sh)?"?\s+([\w.$]+)\s+"\$@"')


def connection_options() -> dict[str, dict[str, object]]:
    """The argument_spec entries of every module that runs the tools."""
    return {
        "bootstrap_server": {"type": "str", "default": "localhost:9092"},
        "kafka_bin_dir": {"type": "path", "required": True},
        "command_config": {"type": "path"},
        "timeout": {"type": "int", "default": 120},
    }


def error_summary(stdout: str, stderr: str) -> str:
    """The tool's error lines without Java stack frames.

    kafka-topics prints its error on stdout and a stack trace on stderr; kafka-configs prints
    both on stderr.
    """
    lines = []
    for line in (*stdout.splitlines(), *stderr.splitlines()):
        text = line.strip()
        is_stack_frame = text.startswith(("at ", "... "))
        if text and not is_stack_frame and text not in lines:
            lines.append(text)
    return " | ".join(lines) or "(no output)"


def argument_file_line(argument: str) -> str:
    """One argument quoted for a java @argument file."""
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class KafkaTools:
    """Runs the named tools from one Kafka installation against one cluster."""

    def __init__(self, module: AnsibleModule, *tools: str) -> None:
        self._module = module
        self._bin_dir = Path(module.params["kafka_bin_dir"])
        self.paths = {tool: self._find_tool(tool) for tool in tools}
        # Only kafka_acls offers bootstrap_controller: the tools it runs also speak to controllers.
        controllers = module.params.get("bootstrap_controller")
        self._endpoint = controllers or module.params["bootstrap_server"]
        self._connection = (
            ["--bootstrap-controller", controllers]
            if controllers
            else ["--bootstrap-server", module.params["bootstrap_server"]]
        )
        command_config = module.params["command_config"]
        if command_config is not None:
            if not Path(command_config).is_file():
                module.fail_json(
                    msg=f"command_config '{command_config}' is not a file; give the path of a "
                    "client properties file on the target host, or leave it unset."
                )
            self._connection += ["--command-config", command_config]
        self._timeout = module.params["timeout"]

    def _find_tool(self, tool: str) -> str:
        found = next(
            (
                str(path)
                for path in (self._bin_dir / tool, self._bin_dir / f"{tool}.sh")
                if path.is_file()
            ),
            None,
        )
        if found is None:
            self._module.fail_json(
                msg=f"Neither {tool} nor {tool}.sh found in kafka_bin_dir '{self._bin_dir}'; set "
                "kafka_bin_dir to the bin/ directory of the Kafka installation on this host."
            )
        return str(found)

    def command(self, tool: str, *args: str) -> list[str]:
        return [self.paths[tool], *self._connection, *args]

    def run(self, argv: list[str]) -> str:
        # The tools' admin client retries for a minute or more when no broker answers;
        # the bound keeps a play from hanging on an unreachable cluster.
        rc, stdout, stderr = self._module.run_command(
            ["timeout", "--kill-after=10", str(self._timeout), *argv],
            # A JMX_PORT inherited from the login environment would make the tool's JVM try
            # to bind the broker's JMX port and die.
            environ_update={"JMX_PORT": ""},
            expand_user_and_vars=False,
        )
        tool = Path(argv[0]).name
        if rc == _TIMEOUT_EXIT_CODE:
            self._module.fail_json(
                msg=f"{tool} did not finish within {self._timeout} seconds; check that Kafka "
                f"answers at {self._endpoint}, or raise timeout.",
                cmd=argv,
                stdout=stdout,
                stderr=stderr,
            )
        if rc != 0:
            self._module.fail_json(
                msg=f"{tool} failed with exit code {rc}: {error_summary(stdout, stderr)}",
                cmd=argv,
                rc=rc,
                stdout=stdout,
                stderr=stderr,
            )
        return stdout

    def run_with_secret(self, tool: str, *args: str) -> str:
        """Run ``tool`` with arguments that hold a secret, which ``ps`` must not show.

        The JVM reads them from an argument file (``java @file``) that only this user can read
        and that is gone when the tool ends; the failure report names the tool, not its arguments.
        """
        main_class = self._main_class(tool)
        directory = tempfile.mkdtemp(prefix="kafka-cli-")
        try:
            argument_file = Path(directory) / "arguments"
            descriptor = os.open(argument_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                lines = [main_class, *self._connection, *args]
                handle.write("\n".join(argument_file_line(line) for line in lines) + "\n")
            return self.run([self._find_tool("kafka-run-class"), f"@{argument_file}"])
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _main_class(self, tool: str) -> str:
        found = _MAIN_CLASS.search(Path(self.paths[tool]).read_text())
        if found is None:
            self._module.fail_json(
                msg=f"{self.paths[tool]} does not end in 'exec kafka-run-class CLASS \"$@\"'; "
                "this Kafka installation's tools have an unexpected layout."
            )
        return found.group(1) if found else ""

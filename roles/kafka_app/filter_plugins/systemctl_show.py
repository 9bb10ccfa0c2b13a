"""`systemctl show` output as data: one systemctl call reads every unit the role runs.

`systemctl_show(stdout)` turns the blank-line-separated blocks of
`systemctl show --property=Id,... UNIT...` into `{Id: {property: value}}`.
"""


def systemctl_show(output: str) -> dict[str, dict[str, str]]:
    units = {}
    for block in output.split("\n\n"):
        properties = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in properties:
            units[properties["Id"]] = properties
    return units


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"systemctl_show": systemctl_show}

"""The `pdopt` command line: a thin layer over the library (docs/cli.md).

Each command lives in its own module and is registered here; shared options, error handling and
output rendering are in `pdopt.cli.common`.
"""

from __future__ import annotations

from pdopt.cli.batch import batch
from pdopt.cli.check import check, schema
from pdopt.cli.common import main
from pdopt.cli.export import export
from pdopt.cli.profile import profile
from pdopt.cli.profile_estimate import aiconfigurator, estimate, gpus_, models_
from pdopt.cli.ratio import ratio
from pdopt.cli.report import report
from pdopt.cli.simulate import simulate, verify
from pdopt.cli.solve import solve

main.add_command(ratio)
main.add_command(check)
main.add_command(schema)
main.add_command(solve)
main.add_command(profile)
for _command in (estimate, aiconfigurator, gpus_, models_):
    profile.add_command(_command)
main.add_command(batch)
main.add_command(simulate)
main.add_command(verify)
main.add_command(report)
main.add_command(export)

__all__ = ["main"]

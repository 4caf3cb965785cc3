"""Snakemake wrapper: run one flepimop-sync protocol and write its JSON receipt.

Params are mapped to flepimop-sync's SyncOptions by ``flepimop_sync.api`` (the same
function the workflow uses for its rerun digest); the plan builds every command.
"""

__author__ = "flepiMoP developers"
__license__ = "MIT"

import sys

from flepimop_sync import api

params = dict(snakemake.params.items())  # noqa: F821 - injected by Snakemake
if "config_files" not in params and "config" in snakemake.input.keys():  # noqa: F821
    params["config_files"] = list(snakemake.input.config) if not isinstance(  # noqa: F821
        snakemake.input.config, str) else [snakemake.input.config]  # noqa: F821
output = snakemake.output  # noqa: F821
receipt = output.receipt if "receipt" in output.keys() else output[0]
log = snakemake.log[0] if snakemake.log else None  # noqa: F821

# the rule's status as api.run_rule_status decides it (the rules of `flepimop sync
# --snakemake-rules` too): 0, or one line and the error's own status (2 usage, 130/143 a stop signal...)
sys.exit(api.run_rule_status(params, receipt=receipt, log=log))

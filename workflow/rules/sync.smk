# One rule per sync protocol: sync_<name> writes results/receipts/sync_<name>.json
# ('-' and '.' in a protocol name become '_'; the same naming as flepimop_sync.smk).
# Its params carry the digest of what the protocol moves, so editing a protocol reruns
# its rule and nothing else.

for protocol_name in SYNC.protocols:

    rule:
        name:
            SYNC_RULES[protocol_name]
        output:
            sync_receipt(SYNC_RULES[protocol_name]),
        log:
            sync_log(SYNC_RULES[protocol_name]),
        localrule: LOCAL_SYNC
        conda:
            SYNC_ENV
        params:
            **protocol_rule_params(protocol_name),
        message:
            f"flepimop sync: protocol {protocol_name!r} ({SYNC.protocols[protocol_name].type})"
        wrapper:
            SYNC_WRAPPER

# One rule per sync protocol: sync_<name> writes results/receipts/sync_<name>.json
# ('-' and '.' in a protocol name become '_'; the same naming as flepimop_sync.smk).
# Its params carry the digest of the protocol's resolved definition, so editing a
# protocol reruns its rule and nothing else.

for protocol_name in SYNC.protocols:

    rule:
        name:
            SYNC_RULES[protocol_name]
        output:
            receipt(SYNC_RULES[protocol_name]),
        log:
            log_file(SYNC_RULES[protocol_name]),
        params:
            **sync_params(protocol_name),
        localrule: LOCAL_SYNC
        message:
            f"flepimop sync: protocol {protocol_name!r} ({SYNC.protocols[protocol_name].type})"
        wrapper:
            SYNC_WRAPPER

# The campaign: per run, fetch the resume files of a previous run, calibrate, snapshot
# exactly that run (wrappers/flepimop-snapshot over scripts/snapshot.py: as `flepimop
# batch-calibrate`'s sync job, the run's files under the outputs, its *.pdf/*.h5, the
# manifest, to target '+ <run>'). calibrate: wrappers/flepimop-calibrate over
# scripts/calibrate.py. Wrappers, not `script:`: see docs/performance.md (Snakemake).
#
# Each step is one rule with a {run} wildcard (results/{run}/receipts/<step>.json); the
# rules `resume_fetch`, `calibrate` and `snapshot` (no wildcard) are targets for that
# step of every run: `snakemake resume_fetch` fetches for all runs.


rule resume_fetch_run:
    output:
        run_receipt("resume_fetch"),
    log:
        run_log("resume_fetch"),
    localrule: LOCAL_SYNC
    conda:
        SYNC_ENV
    params:
        **step_params("resume_fetch"),
    message:
        "resume_fetch {wildcards.run}: previous run's resume files with protocol {params.protocol!r}"
    wrapper:
        SYNC_WRAPPER


rule calibrate_run:
    input:
        calibrate_input(),
    output:
        run_receipt("calibrate"),
    log:
        run_log("calibrate"),
    conda:
        CALIBRATE_ENV
    threads: calibrate_thread_count()
    resources:
        **calibrate_resources(),
    params:
        **calibrate_params(),
    wrapper:
        CALIBRATE_WRAPPER


rule snapshot_run:
    input:
        calibrate=snapshot_input(),
    output:
        run_receipt("snapshot"),
    log:
        run_log("snapshot"),
    localrule: LOCAL_SYNC
    conda:
        SYNC_ENV
    params:
        **snapshot_params(),
    message:
        "snapshot {wildcards.run}: push the run's outputs with protocol {params.protocol!r}"
    wrapper:
        SNAPSHOT_WRAPPER


rule resume_fetch:
    input:
        receipts_of("resume_fetch"),
    localrule: True


rule calibrate:
    input:
        receipts_of("calibrate"),
    localrule: True


rule snapshot:
    input:
        receipts_of("snapshot"),
    localrule: True

# The calibration campaign: fetch the resume files of a previous run, calibrate,
# snapshot exactly that run (scripts/snapshot.py: as `flepimop batch-calibrate`'s sync job,
# the run's files under the outputs, its *.pdf/*.h5, the manifest, to target '+ <run>').

if RESUME["enabled"]:

    rule resume_fetch:
        output:
            receipt("resume_fetch"),
        log:
            log_file("resume_fetch"),
        params:
            **resume_params(),
        localrule: LOCAL_SYNC
        message:
            "resume_fetch: previous run's resume files with protocol {params.protocol!r}"
        wrapper:
            SYNC_WRAPPER


if CALIBRATE["enabled"]:

    rule calibrate:
        input:
            calibrate_inputs(),
        output:
            receipt("calibrate"),
        log:
            log_file("calibrate"),
        params:
            **calibrate_params(),
        threads: CALIBRATE["threads"]
        resources:
            **calibrate_resources(),
        conda:
            "../envs/calibrate.yaml"
        script:
            "../scripts/calibrate.py"


if SNAPSHOT["enabled"]:

    rule snapshot:
        input:
            **snapshot_inputs(),
        output:
            receipt("snapshot"),
        log:
            log_file("snapshot"),
        params:
            **snapshot_params(),
        localrule: LOCAL_SYNC
        message:
            "snapshot: push the run's outputs with protocol {params.protocol!r}"
        conda:
            "../wrappers/flepimop-sync/environment.yaml"
        script:
            "../scripts/snapshot.py"

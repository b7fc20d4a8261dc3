rule train:
    """One PFN run per pool size and seed: checkpoints at log-spaced steps and a log table.

    params hold the run's science only; device, threads, save_every and compile are read
    from the config by the script (execution settings: changing them reruns nothing).
    Trainings go first: the read-outs of finished runs are many short jobs that fill the cores
    at the end, where a training left last would run alone beside idle cores.
    """
    input:
        pool=pool_file,
    output:
        checkpoints=[layout.checkpoint(run_dir(), step) for step in CHECKPOINT_STEPS],
        log=layout.fill(layout.TRAIN_LOG, run=run_dir()),
    log:
        f"{RESULTS}/logs/train/M{{M}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/M{{M}}_seed{{seed}}.tsv"
    priority: FIRST
    conda:
        "../../envs/lrpfn.yaml"
    threads: EXECUTION.threads
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1 if EXECUTION.device.startswith("cuda") else 0,
    params:
        run=run_identity,
    script:
        "../scripts/train.py"


use rule train as train_short with:
    output:
        checkpoints=[layout.checkpoint(short_run_dir(), step) for step in SHORT_STEPS],
        log=layout.fill(layout.TRAIN_LOG, run=short_run_dir()),
    log:
        f"{RESULTS}/logs/train_short/M{{M}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_short/M{{M}}_seed{{seed}}.tsv"
    params:
        run=short_run_identity,

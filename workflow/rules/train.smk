rule train:
    """One PFN run per pool size and seed: checkpoints at log-spaced steps and a log table."""
    input:
        pool=pool_file,
    output:
        checkpoints=[
            f"{run_dir()}/{checkpoint_name(step)}" for step in CHECKPOINT_STEPS
        ],
        log=f"{run_dir()}/log.parquet",
    log:
        f"{RESULTS}/logs/train/M{{M}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/M{{M}}_seed{{seed}}.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: config["train"].get("threads", 1)
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1 if TRAIN_DEVICE == "cuda" else 0,
    params:
        run=lambda wc: run_config(config, wc.M, wc.seed).to_dict(),
    script:
        "../scripts/train.py"

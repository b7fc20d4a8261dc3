rule predictive:
    """The PFN's predictive density at fixed prompts, every checkpoint, against the exact ones."""
    input:
        checkpoints=lambda wc: [
            f"{run_dir(wc.M, wc.seed)}/step_{step:07d}.pt" for step in CHECKPOINT_STEPS
        ],
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=f"{RESULTS}/tasks/eval_true.parquet",
    output:
        kl=f"{RESULTS}/predictive/M{{M}}_seed{{seed}}.parquet",
        density=f"{RESULTS}/predictive/M{{M}}_seed{{seed}}_density.parquet",
    log:
        f"{RESULTS}/logs/predictive/M{{M}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predictive/M{{M}}_seed{{seed}}.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        settings=config["predictive"],
        noise_var=config["noise_var"],
        run=run_identity,
    script:
        "../scripts/predictive.py"


rule aggregate_predictive:
    """KL divergences from the exact predictives, every run, prompt and checkpoint."""
    input:
        [f"{RESULTS}/predictive/M{M}_seed{seed}.parquet" for M, seed in runs()],
    output:
        f"{RESULTS}/tables/predictive.parquet",
    log:
        f"{RESULTS}/logs/aggregate_predictive.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_predictive.py"

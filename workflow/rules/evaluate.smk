rule evaluate:
    """SPEC §6 metrics per position of one checkpoint, on T_M and on T_true."""
    input:
        checkpoint=f"{run_dir()}/step_{{step}}.pt",
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=f"{RESULTS}/tasks/eval_true.parquet",
    output:
        f"{RESULTS}/eval/M{{M}}_seed{{seed}}/step_{{step}}.parquet",
    log:
        f"{RESULTS}/logs/eval/M{{M}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/M{{M}}_seed{{seed}}_step{{step}}.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        noise_var=config["noise_var"],
        run=lambda wc: run_config(config, wc.M, wc.seed).to_dict(),
    script:
        "../scripts/evaluate.py"


rule aggregate:
    """Tidy tables over all runs: metrics, position means, M*, training logs, resampling statistics."""
    input:
        evals=eval_files(),
        logs=train_logs(),
        resample_stats=resample_stats_files(),
    output:
        metrics=f"{RESULTS}/tables/metrics.parquet",
        summary=f"{RESULTS}/tables/summary.parquet",
        thresholds=f"{RESULTS}/tables/thresholds.parquet",
        train_log=f"{RESULTS}/tables/train_log.parquet",
        resample_stats=f"{RESULTS}/tables/resample_stats.parquet",
    log:
        f"{RESULTS}/logs/aggregate.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate.py"

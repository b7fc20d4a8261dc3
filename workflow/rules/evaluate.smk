rule evaluate:
    """SPEC §6 metrics of one checkpoint on T_M and on T_true: per position and per sequence."""
    input:
        checkpoint=f"{run_dir()}/step_{{step}}.pt",
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=f"{RESULTS}/tasks/eval_true.parquet",
    output:
        positions=f"{RESULTS}/eval/M{{M}}_seed{{seed}}/step_{{step}}.parquet",
        sequences=f"{RESULTS}/eval/M{{M}}_seed{{seed}}/step_{{step}}_sequences.parquet",
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
        run=run_identity,
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_short with:
    input:
        checkpoint=f"{short_run_dir()}/step_{{step}}.pt",
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=f"{RESULTS}/tasks/eval_true.parquet",
    output:
        positions=f"{RESULTS}/short_budget/eval/M{{M}}_seed{{seed}}/step_{{step}}.parquet",
        sequences=f"{RESULTS}/short_budget/eval/M{{M}}_seed{{seed}}/step_{{step}}_sequences.parquet",
    log:
        f"{RESULTS}/logs/eval_short/M{{M}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_short/M{{M}}_seed{{seed}}_step{{step}}.tsv"
    params:
        noise_var=config["noise_var"],
        run=short_run_identity,


use rule evaluate as evaluate_long with:
    input:
        checkpoint=f"{run_dir()}/step_{{step}}.pt",
        pool=pool_file,
        eval_pool=lambda wc: pool_eval_file(wc, "eval_long"),
        eval_true=f"{RESULTS}/tasks/eval_long_true.parquet",
    output:
        positions=f"{RESULTS}/eval/M{{M}}_seed{{seed}}/step_{{step}}_in_context.parquet",
    log:
        f"{RESULTS}/logs/eval_long/M{{M}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_long/M{{M}}_seed{{seed}}_step{{step}}.tsv"
    params:
        noise_var=config["noise_var"],
        run=run_identity,
        in_context=True,


rule aggregate_eval:
    """Every evaluation table stacked, position means, closeness and budget effect per pool size, M*."""
    input:
        positions=eval_files(),
        sequences=eval_files("_sequences"),
        short=short_eval_files(),
    output:
        metrics=f"{RESULTS}/tables/metrics.parquet",
        summary=f"{RESULTS}/tables/summary.parquet",
        sequences=f"{RESULTS}/tables/sequences.parquet",
        closeness=f"{RESULTS}/tables/closeness.parquet",
        budget_effect=f"{RESULTS}/tables/budget_effect.parquet",
        thresholds=f"{RESULTS}/tables/thresholds.parquet",
    log:
        f"{RESULTS}/logs/aggregate_eval.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_eval.py"


rule aggregate_train_log:
    """The training logs of every run in one table."""
    input:
        train_logs(),
    output:
        f"{RESULTS}/tables/train_log.parquet",
    log:
        f"{RESULTS}/logs/aggregate_train_log.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_train_log.py"


rule aggregate_in_context:
    """The in-context curves of every run's final checkpoint, past the trained length, in one table."""
    input:
        in_context_files(),
    output:
        f"{RESULTS}/tables/in_context.parquet",
    log:
        f"{RESULTS}/logs/aggregate_in_context.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_in_context.py"

rule resample:
    """Predictive resampling of the implied prior and posteriors with one checkpoint."""
    input:
        checkpoint=layout.checkpoint(run_dir()),
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        path(layout.RESAMPLE),
    log:
        f"{RESULTS}/logs/resample/M{{M}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/resample/M{{M}}_seed{{seed}}_step{{step}}.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=resample_settings(
            "n_paths", "path_length", "prefix_length", "n_prefixes", "seed"
        ),
        run=run_identity,
    script:
        "../scripts/resample.py"


rule resample_reference:
    """The same resampling with exact predictives: the Gaussian prior and pool M, twice each."""
    input:
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        path(layout.REFERENCE),
    log:
        f"{RESULTS}/logs/resample/M{{M}}_reference.log",
    benchmark:
        f"{RESULTS}/benchmarks/resample/M{{M}}_reference.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        **FAMILY_PARAMS,
        settings=resample_settings(
            "n_paths", "path_length", "prefix_length", "n_prefixes", "seed"
        ),
        dim=config["dim"],
        noise_var=config["noise_var"],
    script:
        "../scripts/resample_reference.py"


rule resample_stats:
    """Per checkpoint, target and dimension: the PFN's samples against the references."""
    input:
        samples=lambda wc: resample_files(wc.M, wc.seed),
        reference=path(layout.REFERENCE),
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        path(layout.RESAMPLE_STATS),
    log:
        f"{RESULTS}/logs/resample/M{{M}}_seed{{seed}}_stats.log",
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        **STATS_FAMILY_PARAMS,
        settings=resample_settings("prefix_length", "n_prefixes"),
        dim=config["dim"],
    script:
        "../scripts/resample_stats.py"


rule aggregate_resample:
    """The resampling statistics of every run in one table, and its posterior marginals."""
    input:
        per_run(layout.RESAMPLE_STATS),
    output:
        stats=path(layout.TABLE, name="resample_stats"),
        marginals=path(layout.TABLE, name="posterior_marginals"),
        summary=path(layout.TABLE, name="posterior_summary"),
    log:
        f"{RESULTS}/logs/aggregate_resample.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_resample.py"

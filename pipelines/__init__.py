"""The verbs, one file each (the diffusers pattern: models are parts, pipelines are the verbs).

Every pipeline is one function: paths and a frozen options dataclass in, a result dataclass out (``to_json()``), no
click and no printing, progress through an optional callback. The CLI (``usdposer.commands``), the tests, a notebook
and a batch worker all call them the same way::

    from usdposer.pipelines.sample import SampleOptions, sample

    result = sample("fox.usdc", "fox.samples.usdc", SampleOptions(n=16, seed=0))
    result.to_json()

This package imports nothing heavy until a verb runs.
"""

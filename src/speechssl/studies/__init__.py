"""The Barlow Twins study's experiments, each one command: loss-variant ablations, the
pretraining-data comparison, cross-correlation structure and disentanglement analysis.

Studies sit on top of the pipeline: they pretrain (:mod:`speechssl.train`), evaluate
(:mod:`speechssl.downstream`) and analyse (:mod:`speechssl.analysis`), and write a report.
"""

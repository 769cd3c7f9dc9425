"""Evaluation: the sample manifest, benchmark adapters and metrics.

Data flows one way here as elsewhere: an adapter reads a benchmark's public
annotation release and yields manifest samples; the runner grounds each sample;
the metrics score the predictions. Nothing in this package needs torch.
"""

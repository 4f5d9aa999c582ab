"""Training and inference around the model: the loop (:mod:`.train`) and its config, state, log,
checkpoint and multi-GPU helpers, evaluation, prediction on one image, the ablations and the benchmark.
"""

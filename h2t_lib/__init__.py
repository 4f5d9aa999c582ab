"""h2t: Handformer2T, taught and built.

Submodules: ``skeleton`` (42-joint convention), ``camera`` (projection helpers),
``data`` (synthetic renderer, InterHand2.6M / RHD loaders), ``model``,
``losses``, ``metrics``, ``train``, ``evaluate``, ``bench``, ``viz``.
"""
__version__ = "0.1.0"

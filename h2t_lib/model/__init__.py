"""The Handformer2T model (paper Sec. 3) and its parts.

    from h2t_lib.model.config import ModelConfig
    from h2t_lib.model import Handformer2T
    model = Handformer2T(ModelConfig.preset("tiny"))

Parts, in the order of the paper: ``backbone`` (torchvision ResNet, reusable), ``feature_extractor``
(Eq. 2-5), ``tokenizer`` (Eq. 6), ``coarse`` (Eq. 7-12), ``refiner`` (Eq. 13-17),
``handformer2t`` (Eq. 1), ``params`` (parameter counts, the ``params`` command).
"""
from h2t_lib.model.backbone import ResNetBackbone, build_resnet
from h2t_lib.model.coarse import CoarsePredictor, PoseHead, RootHead, SelfAttentionLayer
from h2t_lib.model.feature_extractor import FeatureExtractor, LevelFeature
from h2t_lib.model.handformer2t import Handformer2T
from h2t_lib.model.params import count_parameters
from h2t_lib.model.refiner import CrossAttentionLayer, KeypointGuidedFusion, PoseQueryEnhancer, RefineStage
from h2t_lib.model.tokenizer import GroupedLinear, HandTokenizer, JointTokenizer, TokenMLP, build_tokenizer

__all__ = [
    "Handformer2T", "count_parameters", "ResNetBackbone", "build_resnet", "FeatureExtractor", "LevelFeature",
    "HandTokenizer", "JointTokenizer", "TokenMLP", "GroupedLinear", "build_tokenizer", "CoarsePredictor",
    "PoseHead", "RootHead", "SelfAttentionLayer", "KeypointGuidedFusion", "PoseQueryEnhancer",
    "CrossAttentionLayer", "RefineStage",
]

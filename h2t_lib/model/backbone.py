"""The convolutional backbone: a torchvision ResNet returning its four stage outputs.

Reusable on its own (the heatmap baseline uses it too)::

    net = ResNetBackbone("resnet50")            # random init, never downloads
    maps = net(images)                          # images (B, 3, S, S) in [0, 1]
    [m.shape for m in maps]                     # (B, c_l, S / s_l, S / s_l), s_l = 4, 8, 16, 32

Pretrained weights come only from a file you name (a torchvision state dict, e.g. saved
once with ``torch.save(torchvision.models.resnet50(weights="DEFAULT").state_dict(), path)``
on a machine with internet).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from h2t_lib.model.config import BACKBONE_CHANNELS, LEVEL_STRIDES

#: ImageNet statistics, for the normalisation done inside the backbone (images arrive in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_resnet(name: str, weights=None) -> torchvision.models.ResNet:
    """A torchvision ResNet (``resnet18|34|50``) with random weights, or weights read from a file.

    ``weights``: None, or the path of a state dict saved from the same torchvision architecture
    (the classifier ``fc.*`` may be present or not). Nothing is ever downloaded.
    """
    if name not in BACKBONE_CHANNELS:
        raise ValueError(f"backbone {name!r} is not supported; use one of {sorted(BACKBONE_CHANNELS)}")
    net = getattr(torchvision.models, name)(weights=None)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"backbone weights file not found: {path}; save torchvision's {name} state dict there "
                f"(on a machine with internet) or set backbone_weights=None for a random init"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise ValueError(f"could not read backbone weights {path} as a torch state dict ({type(e).__name__})") from e
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"backbone weights {path} hold a {type(state).__name__}, not a state dict")
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        unexpected = [k for k in unexpected if not k.startswith("fc.")]
        if missing or unexpected:
            raise ValueError(
                f"backbone weights {path} do not fit torchvision {name}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}; save the state dict of torchvision.models.{name}"
            )
    return net


class ResNetBackbone(nn.Module):
    """ResNet trunk returning ``[F_layer1, F_layer2, F_layer3, F_layer4]`` (strides 4, 8, 16, 32).

    Input: images (B, 3, S, S) with values in [0, 1]; ImageNet mean/std normalisation is done
    here (``normalize=True``) so that ImageNet weights can be used as they are.
    The classifier (avgpool + fc) is dropped, and so are the levels after ``num_levels``
    (a model whose stages read only layer1..layer3 does not carry layer4's weights:
    for ResNet-18 that is 8.4 M of its 11.2 M parameters).
    """

    def __init__(self, name: str = "resnet50", weights=None, normalize: bool = True, num_levels: int = 4):
        super().__init__()
        if num_levels not in (1, 2, 3, 4):
            raise ValueError(f"num_levels={num_levels} must be 1..4 (layer1..layer4)")
        net = build_resnet(name, weights)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = [f"layer{i}" for i in range(1, num_levels + 1)]
        for layer in self.layers:
            setattr(self, layer, getattr(net, layer))
        self.name = name
        self.normalize = normalize
        self.out_channels = BACKBONE_CHANNELS[name]
        self.strides = LEVEL_STRIDES
        # constants, not weights: kept out of the state dict
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> list:
        x = (image - self.mean) / self.std if self.normalize else image  # (B, 3, S, S)
        x = self.stem(x)  # (B, 64, S/4, S/4)
        maps = []
        for name in self.layers:
            x = getattr(self, name)(x)  # (B, c_l, S/s_l, S/s_l)
            maps.append(x)
        return maps

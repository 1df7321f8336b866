"""`ModelOptions`: the `model` keys of a config that shape a network, typed, as the encoders,
decoders and heads read them (each reads only the fields that apply to it)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelOptions:
    """The architecture options of `config["model"]` (defaults: `config.DEFAULTS`).

    `start_filters` is the width of the from-scratch U-Net's first level, and with an `encoder`
    the decoder's width (16 gives `segmentation_models`' decoder channels); `depth` and `dropout`
    apply to the from-scratch U-Net only (a pretrained backbone fixes its depth and has no
    dropout; the config check refuses them with an `encoder`).
    """

    start_filters: int
    depth: int
    dropout: float
    scse: bool
    hypercolumn: bool
    deep_supervision: bool

    @classmethod
    def from_config(cls, model: dict) -> "ModelOptions":
        """The options of a resolved config's `model` section (`type` and `precision` are the
        factory's, not the network's)."""
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in model.items() if key in names})

"""What each config key means: the one place its description is written.

`DESCRIPTIONS` maps a dotted key (`"stage1.loss"`) to one sentence for users. `code/make_docs.py`
renders it, with each key's default and type from `config.DEFAULTS`, into the reference in
`docs/configuration.md`; `tests/test_docs.py` fails when a key of `DEFAULTS` has no description
here or a description names a key that no longer exists. Markdown is allowed in the text.
"""

_AS_STAGE1 = "as in stage 1"

DESCRIPTIONS: dict[str, str] = {
    "version": "config version; fills the `%s` in `name`",
    "name": "run name, with `%s` replaced by `version` (at most one `%s`); fold runs add "
    "`-cvfold<k>`; also the MLflow experiment name",
    "seed": "seed of training's random stream: weight initialisation, dropout and augmentation; "
    "another seed trains the same folds again (seed averaging, noise estimates)",
    "crossvalidation.folds": "number of coverage-stratified folds; `--cv-currentfold` picks one",
    "crossvalidation.split_seed": "seed of the coverage-stratified fold split (and of the single "
    "split); another one means other folds: bump `version`",
    "crossvalidation.validation_split": "validation fraction of the single split used without "
    "`--cv-currentfold` (or with `folds` 1); between 0 and 1",
    "input.size": "side of the model's input; the 101 px images are resized or padded to it "
    "(`input.mode`) and predictions brought back to 101 (>= 32; >= 101 with `pad`)",
    "input.mode": '`"resize"` (interpolate images to `input.size`, predictions back) or `"pad"` '
    "(pad images centred to `input.size`, crop predictions back to 101 px, no interpolation)",
    "input.pad_mode": 'the borders `input.mode` `"pad"` adds: `"reflect"` (mirrored, no edge '
    'pixel repeated), `"edge"` (the edge pixel repeated) or `"zero"`; masks are padded alike; '
    'refused with `"resize"`',
    "input.channels": "1 (grayscale) or 3 (the image repeated as RGB)",
    "input.normalize": "scale pixel values from 0..255 to 0..1",
    "input.coord_channels": "append depth channels inside the model: each row's relative depth "
    "(0 top, 1 bottom) and image x depth; with an `encoder` and 1 input channel they become its "
    "3 channels (image, depth, image x depth)",
    "input.cumsum_channel": "append a channel inside the model: the image minus its mean, summed "
    "down each column and divided by the height (vertical context, the 2018 kernels' cumsum "
    "channel); refused with an `encoder`",
    "model.type": "the from-scratch model, a name in `MODELS` (listed below); refused with an "
    "`encoder`",
    "model.start_filters": "filters at the first U-Net level, doubling at each level down; with "
    "an `encoder`, the decoder's width: U-Net decoder `16x` to `1x` it (256-128-64-32-16), FPN "
    "pyramid `16x`, its heads `8x`",
    "model.depth": "number of down-sampling levels (1 to 6); refused with an `encoder`",
    "model.dropout": "dropout rate after each pooling (half at the first level) and in the "
    "decoder, in [0, 1); refused with an `encoder`",
    "model.precision": "Keras dtype policy, a name listed below (mixed precision is a GPU "
    "speed-up; on a 2-core CPU bfloat16 was not faster)",
    "model.scse": "an scSE (concurrent spatial and channel squeeze-excitation) attention block "
    "after each decoder level; all models",
    "model.hypercolumn": "hypercolumn fusion: every decoder level upsampled to full size and "
    "concatenated before the logits (with an encoder, each first squeezed to `start_filters` "
    "channels); `unet_resnet`, Unet and Linknet (FPN fuses its levels already)",
    "model.deep_supervision": "a mask head on every coarser decoder level (loss on images with "
    "salt only, weight 0.1 each) and an image-level empty-mask head (cross-entropy, weight 0.1) "
    "that empties the predicted mask of images it calls empty; all models",
    "encoder": "the original's pretrained-encoder object (`type`, `backbone`, `weights`); when "
    "set, it replaces `model.type` (see [backbones.md](backbones.md))",
    "encoder.type": "decoder, a name in `DECODERS` (listed below; the original's name for it)",
    "encoder.backbone": "encoder, a name in `BACKBONES` (see [backbones.md](backbones.md))",
    "encoder.weights": '`"imagenet"` (downloaded once, cached in `~/.keras/models/`), `null` '
    "(random), or a local file path: a `.weights.h5` of this encoder "
    '(`model.get_layer("encoder").save_weights(...)`), a `keras.applications` `.h5` weights '
    "file, or for `resnet34`/`resnext50` a timm `model.safetensors`",
    "augmentation.hflip": "random horizontal flips of training images",
    "augmentation.brightness": "largest random per-image brightness shift (0 = off)",
    "augmentation.contrast": "largest random per-image relative contrast change (0 = off)",
    "augmentation.shift": "largest random translation, as a fraction of the side, in each "
    "direction (affine, reflected borders; the mask moves with the image; 0 = off)",
    "augmentation.scale": "largest random relative zoom: a factor in [1 - scale, 1 + scale] about "
    "the centre (affine, with `shift` and `rotate`; 0 = off)",
    "augmentation.rotate": "largest random rotation in degrees either way (affine; 0 = off)",
    "augmentation.pad_crop": "random pad-and-crop: pad by this many pixels on each side by "
    "reflection, then crop a random window of the original size (a random whole-pixel "
    "translation with reflected borders, as the 4th place did; 0 = off)",
    "stage1.epochs": "maximum epochs of stage 1 (0 skips the stage)",
    "stage1.batch_size": "training batch size",
    "stage1.loss": "loss, a name listed below",
    "stage1.optimizer": "optimizer, a name listed below",
    "stage1.learning_rate": "initial learning rate",
    "stage1.early_stopping_patience": "epochs without a better `val_score` before the stage stops "
    "(`plateau` only)",
    "stage1.reduce_lr_patience": "epochs without a better `val_score` before the learning rate "
    "is lowered (`plateau` only)",
    "stage1.reduce_lr_factor": "factor the learning rate is multiplied by when lowered "
    "(`plateau` only)",
    "stage1.min_lr": "lowest learning rate",
    "stage1.schedule": "learning-rate schedule, a name listed below: `plateau` "
    "(ReduceLROnPlateau + EarlyStopping, the original's) or `cosine` (cosine cycles from "
    "`learning_rate` down to `min_lr`; no early stop)",
    "stage1.cycles": "with `cosine`: number of equal cycles (warm restarts); with 2 or more, each "
    "cycle's best epoch is a snapshot and the stage's model averages the snapshots' "
    "probabilities (1..epochs; `cosine` only)",
    "stage1.epochs_weights_frozen": "first epochs of the stage with a pretrained encoder's "
    "weights frozen (refused without an `encoder`)",
    "stage1.warmup_epochs": "first epochs of the stage with a linear learning-rate warm-up: "
    "epoch k (from 0) trains at the scheduled rate x (k + 1) / `warmup_epochs` (0 = off; "
    "with `plateau` and `cosine`)",
    "stage1.clipnorm": "largest norm of each variable's gradient, larger ones are scaled "
    "down (Keras `clipnorm`; 0 = off)",
    "stage1.ema_momentum": "keep an exponential moving average of the weights with this "
    "momentum (Keras `use_ema`, e.g. 0.99 per step; 0 = off): validation, the best-epoch "
    "checkpoint, the snapshots and the exported model use the average",
    "stage1.swa_epochs": "average the weights of the stage's last N epochs (SWA), recompute "
    "the batch-norm statistics, and keep the average if it validates at least as well as the "
    "best epoch (0 = off; not with `ema_momentum` or cosine `cycles` >= 2)",
    "stage1.empty_mask_weight": "weight of the final mask's loss on images without salt, "
    'within [0, 1] (1: as on every other image); below 1 the mask learns "no salt" less and '
    "the empty head (its own loss unchanged) decides more of those images. Needs "
    "`model.deep_supervision`",
    "stage2.epochs": "maximum epochs of stage 2 (0 skips the stage)",
    "stage2.batch_size": "training batch size",
    "stage2.loss": "loss, a name listed below",
    "stage2.optimizer": "optimizer, a name listed below",
    "stage2.learning_rate": "initial learning rate",
    "stage2.early_stopping_patience": _AS_STAGE1,
    "stage2.reduce_lr_patience": _AS_STAGE1,
    "stage2.reduce_lr_factor": _AS_STAGE1,
    "stage2.min_lr": _AS_STAGE1,
    "stage2.schedule": _AS_STAGE1,
    "stage2.cycles": _AS_STAGE1,
    "stage2.epochs_weights_frozen": _AS_STAGE1,
    "stage2.warmup_epochs": _AS_STAGE1,
    "stage2.clipnorm": _AS_STAGE1,
    "stage2.ema_momentum": _AS_STAGE1,
    "stage2.swa_epochs": _AS_STAGE1,
    "stage2.empty_mask_weight": _AS_STAGE1,
    "tta.hflip": "average each prediction with that of the mirrored image",
    "predict.batch_size": "batch size for validation and prediction",
    "predict.thresholds": "threshold search grid `[low, high, count]` (`numpy.linspace`), with "
    "0 < low <= high < 1",
    "init.name": "start each fold from another config's trained model of the same fold instead "
    'of random weights: that config\'s `name` (`""`: from scratch); its run must use the same '
    "folds. With `stage1.epochs` 0 it trains stage-2 variants on one shared stage 1 (see "
    "[training.md](training.md#starting-from-another-run))",
    "init.version": "that config's `version`",
    "init.stage": "which of its stage models: `stage1` or `stage2` (a single model, not a "
    "snapshot average)",
    "data.pseudo_labels": "a pseudo-label set `<run>-pseudo<round>` made by "
    '`code/pseudo_label.py` (`""`: none): each fold adds its own fold\'s confident test images '
    "and masks to its training images (never to validation), and the run is named "
    "`<name % version>-pseudo<round>` (see [training.md](training.md#pseudo-labels))",
    "data.small_salt_repeats": "how many times each training image with salt on more than 0 and "
    "at most 10% of it (coverage class 1, where most score is lost) appears in every epoch; 1: "
    "once, as every other image. Validation images are never repeated",
}

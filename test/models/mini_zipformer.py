"""The Zipformer configuration the model tests share: two stacks of one layer each, the same
code paths as the presets, but quick to build and to TorchScript."""

MINI_ZIPFORMER = dict(
    num_encoder_layers="1",
    downsampling_factor="1,2",
    feedforward_dim="64",
    num_heads="2",
    encoder_dim="32,48",
    encoder_unmasked_dim="32",
    cnn_module_kernel="7",
)

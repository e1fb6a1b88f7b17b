// The Tensor module: layers with explicit forward/backward over flat NCHW Float buffers, the U-Net, loss,
// optimiser and safetensors I/O. See docs/INTERFACES.md "Tensor".

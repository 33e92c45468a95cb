"""What a checkpoint directory is, read from metadata only (`rlvla inspect-checkpoint`).

``metadata`` reads tensor names / shapes / dtypes (safetensors headers, torch files memory-mapped) without
tensor data; ``families`` classifies a directory; ``groups`` names what each tensor is; ``load_check`` runs the
loaders' own mapping and shape checks on shape-only (meta) tensors; ``inspect`` assembles the ``Report``.
"""

"""The models a run can train (``model.kind``): the transformer and the MLP classify, the ResNet regresses."""

KINDS = ("transformer", "mlp", "resnet")

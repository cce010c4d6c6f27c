"""The names params choose from, apart from the code behind them: the params schema, which
every stage depends on, imports this and no data reader or network."""

DATASET_NAMES = ("digits", "fashion_mnist", "cifar10", "cifar20", "stl10", "imagenet", "folder")
BACKBONES = ("small_cnn", "resnet18_cifar", "resnet18", "resnet50")

"""Readers that turn each supported data source into an ``ImageSet``."""

from scan_core.data.image_file import IMAGE_EXTENSIONS
from scan_core.data.readers.cifar import read_cifar10, read_cifar20
from scan_core.data.readers.folder import (
    BadImageError,
    FileListing,
    check_on_bad_image,
    decode_listing,
    list_folder,
    read_folder,
)
from scan_core.data.readers.idx import FASHION_MNIST_CLASSES, read_fashion_mnist
from scan_core.data.readers.imagenet import list_imagenet, read_imagenet, read_subset_file
from scan_core.data.readers.stl import read_stl10

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "FileListing",
    "check_on_bad_image",
    "decode_listing",
    "list_folder",
    "list_imagenet",
    "read_cifar10",
    "read_cifar20",
    "read_fashion_mnist",
    "read_folder",
    "read_imagenet",
    "read_stl10",
    "read_subset_file",
]

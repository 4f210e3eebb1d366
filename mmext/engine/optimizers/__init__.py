# Copyright (c) mmext contributors. All rights reserved.
from .amp_optim_wrapper import AmpOptimWrapper
from .trainable_constructor import TrainableOptimWrapperConstructor

__all__ = ['AmpOptimWrapper', 'TrainableOptimWrapperConstructor']

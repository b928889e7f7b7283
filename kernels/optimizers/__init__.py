"""Optimizer updates of flat parameter buffers: SGD, momentum, Nesterov, Adam, AdamW and RMSprop, with L2 or
decoupled weight decay over a decay mask and global-norm clipping read from a device scalar; max-norm constraints."""

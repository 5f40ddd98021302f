"""The readers behind `make_loader`, one module each, on the base they share (`base.ShardedLoader`)."""

"""A tiny shop application, with the kinds of leaks real applications have."""

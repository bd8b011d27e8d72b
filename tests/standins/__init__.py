"""Stand-ins for outside systems, served on 127.0.0.1 by the tests."""

"""Demo data: a made-up Japanese B2B SaaS company's customers, written as the source contract's files."""

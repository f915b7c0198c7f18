"""HTTP: for now only health; web-form intake, webhooks and the read API follow."""

"""A plain module the view imports: edit MOTTO and ping (a `workers` reload)."""
MOTTO = "netreload makes saves go live"


def motto():
    return MOTTO

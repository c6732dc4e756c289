"""Slots for suites whose Floe features do not exist yet. Each prints 'not available yet' so
the report shows the gap instead of hiding it."""

SLOTS = {
    "subscribe": "SUBSCRIBE: change-feed latency from COMMIT to the subscriber, and "
                 "subscribers per server",
}


def runner(name):
    def run(ctx):
        ctx.log(f"{name}: not available yet")
        return f"Not available yet ({SLOTS[name]}).\n"
    return run

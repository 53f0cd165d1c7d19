"""mlbot's domain: the words every layer shares (jobs, events, subscriptions, durations).

Nothing here imports the rest of mlbot, a database or a network client: the engine, the
store, the cards and the bot all import the domain, never the other way round.
"""

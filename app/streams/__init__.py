"""Live streams to subscribers (GraphQL subscriptions over graphql-transport-ws)."""

-- No callbacks at all: connecting, messages and closing do nothing, and
-- requests are answered 404.
return {}

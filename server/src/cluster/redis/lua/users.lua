-- The cluster's members of a presence channel. KEYS[1] channel. No ARGV. Returns the user ids.
return members(false)

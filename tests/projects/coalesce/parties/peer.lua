local P = {}
function P:onRequest() return "peer" end
return P

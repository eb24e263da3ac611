"""The collector: Segment's HTTP Tracking API in front of the landing zone, `/lakemail.js` and a demo shop.

`wire` reads and checks a request, `commit` lands the messages of many requests as one durable file
(group commit), `backlog` refuses work past the configured bounds, `app` puts them behind HTTP.
"""

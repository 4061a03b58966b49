"""Voice of the customer and roadmap input: themes in ticket and NPS texts, their link to
churn and expansion, and the book's ARR-weighted drivers and vanity metrics."""

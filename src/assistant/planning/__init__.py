"""Planning face: session plans for trainers, built through the service and rendered as Word, Markdown or HTML."""

"""One module per Argo CD application of the tree (and per concern they share): each owns
the values it adds to the template context and the objects it renders. `render.py` only
assembles them."""

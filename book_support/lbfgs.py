"""L-BFGS as neural-style runs it (Torch's optim.lbfgs), as a generator of progress.

style_transfer.py's `--optimizer lbfgs`, beside the book's Adam: a step of 1 along the direction
its memory of the last MEMORY steps gives, with no line search beyond halving a step that raised
the loss, so an iteration is usually one loss-and-gradient evaluation, the cost of an Adam step.
Being a generator, it reports every iteration to its caller (who prints, saves, or stops it)
without ever being restarted, which would throw its memory away (README: how long things take).
"""

import numpy as np

HALVINGS = 10  # of a step that raised the loss, before it is taken anyway
MEMORY = 20  # steps L-BFGS remembers: neural-style keeps 100; 10, 20 and 50 do as well here


def minimize(evaluate, image, iterations, report_every, should_stop=lambda: False):
    """Minimise from `image`, where `evaluate(image)` gives (losses, gradient) and
    losses["total"] is the objective. Yields (iteration, image or None, losses) for the start
    (iteration 0) and after every iteration, with the image at every `report_every`-th
    iteration and the last. Once `should_stop()` is true it yields the image where it stands
    and ends."""
    losses, gradient = evaluate(image)
    steps = []  # (step, gradient change, 1 / their product), oldest first
    for iteration in range(iterations + 1):
        if iteration:
            direction = search_direction(gradient, steps)
            # with no curvature known yet, step to where the loss's tangent reaches 0 (Polyak)
            step_size = 1.0 if steps else \
                float(losses["total"]) / max(float(np.vdot(gradient, gradient)), 1e-30)
            for _ in range(HALVINGS):
                step = step_size * direction
                new_image = image + step
                new_losses, new_gradient = evaluate(new_image)
                if new_losses["total"] <= losses["total"]:
                    break
                step_size /= 2
            change = new_gradient - gradient
            curvature = float(np.vdot(step, change))
            if curvature > 1e-10:  # only a step along which the loss curves upwards teaches
                steps = steps[-(MEMORY - 1):] + [(step, change, 1 / curvature)]
            image, losses, gradient = new_image, new_losses, new_gradient
        stopping = should_stop()
        shown = iteration % report_every == 0 or iteration == iterations or stopping
        yield iteration, image if shown else None, losses
        if stopping:
            return


def search_direction(gradient, steps):
    """The two-loop recursion: minus the gradient times L-BFGS's inverse-Hessian estimate
    from the remembered (step, gradient change, 1 / their product) triples, oldest first."""
    direction, alphas = -gradient, []
    for step, change, rho in reversed(steps):
        alphas.append(rho * float(np.vdot(step, direction)))
        direction = direction - alphas[-1] * change
    if steps:
        step, change, rho = steps[-1]
        direction = direction / (rho * float(np.vdot(change, change)))
    for (step, change, rho), alpha in zip(steps, reversed(alphas)):
        direction = direction + step * (alpha - rho * float(np.vdot(change, direction)))
    return direction

"""benchmarks.student_levers: the stand-in student starts at the zero-shot prompt and learns a separable task."""

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.student_levers import Lever, Student, run


def test_fresh_student_is_the_zero_shot_prompt():
    torch.manual_seed(0)
    protos, x = torch.randn(3, 8), torch.randn(5, 8)
    cos = F.normalize(x, dim=-1) @ F.normalize(protos, dim=-1).T  # (5, 3)
    assert torch.allclose(Student(protos).eval()(x), 20.0 * cos, atol=1e-5)


def test_rounds_follow_a_right_teacher_and_report_pseudo_label_accuracy():
    rng = np.random.default_rng(0)
    centres = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0]])

    def draw(n):
        y = rng.integers(0, 2, n)
        return torch.tensor(centres[y] + rng.normal(0, 1, (n, 4)), dtype=torch.float32), torch.tensor(y)

    xg, yg = draw(8)
    xp, yp = draw(400)
    xt, yt = draw(200)
    q0 = F.one_hot(yp, 2).float() * 0.8 + 0.1  # a teacher right on every pool text, 90% confident
    # prototypes pointing the wrong way: the student must learn from the pseudo-labels, not keep its prior
    protos = torch.tensor(centres[::-1].copy(), dtype=torch.float32)
    teacher_test = F.one_hot(1 - yt, 2).float()  # a teacher wrong on every test text, fully confident
    first, last, acc, ens = run(
        Lever(steps=200, limit=None, rounds=2), xg, yg, xp, yp, xt, yt, protos, q0, 1, teacher_test
    )
    assert first == 100.0  # round 1 pseudo-labels are the teacher's
    assert last > 90.0 and acc > 90.0
    assert ens < 50.0  # averaged with a fully confident wrong teacher, the ensemble follows it


def test_a_student_started_from_the_teacher_is_the_teachers_linear_classifier():
    from benchmarks.student_levers import from_linear

    torch.manual_seed(0)
    protos, x = torch.randn(3, 8), torch.randn(5, 8)
    weight, bias = torch.randn(3, 8), torch.randn(3)
    student = Student(protos)
    from_linear(student, weight, bias)
    assert torch.allclose(student.eval()(x), F.normalize(x, dim=-1) @ weight.T + bias, atol=1e-5)

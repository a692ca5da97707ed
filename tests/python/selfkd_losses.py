"""The self-distillation losses as their official code computes them, in PyTorch.

Used by tests/method_fidelity.rs: the Rust side writes the tensors of every
case (logits, features, labels, memory, indices) and the cases' constants;
this script computes each loss term, the total, the gradient of the total
with respect to the logits (and PS-KD's updated memory rows) with the
official arithmetic and writes them for the Rust side to compare with its
own (relative tolerance 1e-5).

Sources, each function a transcription of the official code on CPU (the
`.cuda()` calls dropped; nothing else changed):
- cs_kd: alinlab/cs-kd train.py `KDLoss` and the `-cls` branch of `train`.
- ps_kd: lgcnsai/PS-KD-Pytorch loss/pskd_loss.py `Custom_CrossEntropy_PSKD`
  and main.py `main_worker` (alpha_t) and `train` (targets, memory update).
- tf_kd_reg: yuanli2333/Teacher-free-Knowledge-Distillation
  my_loss_function.py `loss_kd_regularization` (with the variants this
  project exposes as fields: batch-mean reduction, a temperature on the
  student's logits).
- label_smoothing "others": winycg/Self-KD-Lib methods/label_smooth.py
  `LabelSmooth` (the same arithmetic as Teacher-free KD's
  `loss_label_smoothing`); "uniform": torch's own
  `F.cross_entropy(..., label_smoothing=eps)`.
- tf_kd_self: yuanli2333/Teacher-free-Knowledge-Distillation
  my_loss_function.py `loss_kd_self` (with the batch-mean reduction this
  project exposes as a field), the teacher's logits detached as train_kd.py
  wraps them (`Variable(..., requires_grad=False)`).
- byot: luanyunteng/pytorch-be-your-own-teacher train.py: the loss of
  `run_training` with `kd_loss_function` and `feature_loss_function` (and
  the variants exposed as fields: a KL instead of the soft cross-entropy, a
  mean squared hint instead of the masked sum); the gradient is the total's
  with respect to the deepest head's logits, then each auxiliary head's.
- ddgsd (preset selfkdlib): winycg/Self-KD-Lib methods/ddsgd.py `DDGSD` with
  utils.py `DistillKL(T)`, from the logits and features of the joint forward.

Usage: selfkd_losses.py INPUTS.safetensors CASES.json OUT.safetensors
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


# --- alinlab/cs-kd train.py -------------------------------------------------
class KDLoss(nn.Module):
    def __init__(self, temp_factor):
        super(KDLoss, self).__init__()
        self.temp_factor = temp_factor
        self.kl_div = nn.KLDivLoss(reduction="sum")

    def forward(self, input, target):
        log_p = torch.log_softmax(input / self.temp_factor, dim=1)
        q = torch.softmax(target / self.temp_factor, dim=1)
        loss = self.kl_div(log_p, q) * (self.temp_factor**2) / input.size(0)
        return loss


def cs_kd(t, c):
    outputs = t["z"].clone().requires_grad_()
    outputs_cls = t["zp"]
    targets_ = t["y"]
    criterion = nn.CrossEntropyLoss()
    loss = torch.mean(criterion(outputs, targets_))
    ce = loss.detach().clone()
    cls_loss = KDLoss(c["temperature"])(outputs, outputs_cls.detach())
    loss = loss + c["lambda"] * cls_loss
    loss.backward()
    return {"ce": ce, "kl": (c["lambda"] * cls_loss).detach(), "total": loss.detach(), "grad": outputs.grad}


# --- lgcnsai/PS-KD-Pytorch loss/pskd_loss.py, main.py ---------------------
class Custom_CrossEntropy_PSKD(nn.Module):
    def __init__(self):
        super(Custom_CrossEntropy_PSKD, self).__init__()
        self.logsoftmax = nn.LogSoftmax(dim=1)

    def forward(self, output, targets):
        log_probs = self.logsoftmax(output)
        loss = (-targets * log_probs).mean(0).sum()
        return loss


def ps_kd(t, c):
    epoch, end_epoch = c["epoch"], c["epochs"]
    alpha_t = c["alpha_T"] * ((epoch + 1) / end_epoch)
    alpha_t = max(0, alpha_t)
    all_predictions = t["memory"].clone()
    input_indices = t["idx"]
    targets = t["y"]
    num_classes = all_predictions.shape[1]
    targets_numpy = targets.cpu().detach().numpy()
    identity_matrix = torch.eye(num_classes)
    targets_one_hot = identity_matrix[targets_numpy]
    if epoch == 0:
        all_predictions[input_indices] = targets_one_hot
    soft_targets = ((1 - alpha_t) * targets_one_hot) + (alpha_t * all_predictions[input_indices])
    outputs = t["z"].clone().requires_grad_()
    softmax_output = F.softmax(outputs, dim=1)
    loss = Custom_CrossEntropy_PSKD()(outputs, soft_targets)
    loss.backward()
    all_predictions[input_indices] = softmax_output.cpu().detach()
    return {"soft_ce": loss.detach(), "total": loss.detach(), "grad": outputs.grad, "memory": all_predictions}


# --- Teacher-free-Knowledge-Distillation my_loss_function.py ---------------
def tf_kd_reg(t, c):
    outputs = t["z"].clone().requires_grad_()
    labels = t["y"]
    alpha = c["alpha"]
    T = c["temperature"]
    correct_prob = c["correct_prob"]
    loss_CE = F.cross_entropy(outputs, labels)
    K = outputs.size(1)
    teacher_soft = torch.ones_like(outputs)
    teacher_soft = teacher_soft * (1 - correct_prob) / (K - 1)
    for i in range(outputs.shape[0]):
        teacher_soft[i, labels[i]] = correct_prob
    # Variants exposed as fields (official: student_temperature = false,
    # kl_reduction = "element_mean", i.e. nn.KLDivLoss()'s default "mean").
    student = outputs / T if c["student_temperature"] else outputs
    reduction = {"element_mean": "mean", "batch_mean": "batchmean"}[c["kl_reduction"]]
    loss_soft_regu = nn.KLDivLoss(reduction=reduction)(
        F.log_softmax(student, dim=1), F.softmax(teacher_soft / T, dim=1)
    ) * c["multiplier"]
    KD_loss = (1.0 - alpha) * loss_CE + alpha * loss_soft_regu
    KD_loss.backward()
    return {
        "ce": ((1.0 - alpha) * loss_CE).detach(),
        "kl": (alpha * loss_soft_regu).detach(),
        "total": KD_loss.detach(),
        "grad": outputs.grad,
    }


# --- Self-KD-Lib methods/label_smooth.py; torch's label_smoothing ----------
def LabelSmooth(outputs, targets, num_classes=10, epsilon=0.1):
    N = targets.size(0)
    smoothed_labels = torch.full(size=(N, num_classes), fill_value=epsilon / (num_classes - 1))
    smoothed_labels.scatter_(dim=1, index=torch.unsqueeze(targets, dim=1), value=1 - epsilon)
    log_prob = F.log_softmax(outputs, dim=1)
    loss = -torch.sum(log_prob * smoothed_labels) / N
    return loss


def label_smoothing(t, c):
    outputs = t["z"].clone().requires_grad_()
    if c["smoothing"] == "others":
        loss = LabelSmooth(outputs, t["y"], num_classes=outputs.size(1), epsilon=c["epsilon"])
    else:
        loss = F.cross_entropy(outputs, t["y"], label_smoothing=c["epsilon"])
    loss.backward()
    return {"soft_ce": loss.detach(), "total": loss.detach(), "grad": outputs.grad}


# --- Self-KD-Lib methods/ddsgd.py, utils.py --------------------------------
class DistillKL(nn.Module):
    def __init__(self, T):
        super(DistillKL, self).__init__()
        self.T = T

    def forward(self, y_s, y_t):
        p_s = F.log_softmax(y_s / self.T, dim=1)
        p_t = F.softmax(y_t / self.T, dim=1)
        loss = F.kl_div(p_s, p_t, reduction="batchmean") * (self.T**2)
        return loss


def ddgsd(t, c):
    logit = t["z"].clone().requires_grad_()  # the 2B logits of the joint forward
    features = t["h"]
    targets = t["y"]
    criterion_cls = nn.CrossEntropyLoss()
    criterion_div = DistillKL(c["temperature"])
    batch_size = logit.size(0) // 2
    loss_cls = criterion_cls(logit, torch.cat([targets, targets], dim=0)) / 2
    kl = criterion_div(logit[:batch_size], logit[batch_size:].detach())
    kl = kl + criterion_div(logit[batch_size:], logit[:batch_size].detach())
    mmd = 5e-4 * (features[:batch_size].mean() - features[batch_size:].mean()) ** 2
    loss = loss_cls + kl + mmd
    loss.backward()
    return {"ce": loss_cls.detach(), "kl": kl.detach(), "mmd": mmd.detach(), "total": loss.detach(), "grad": logit.grad}


# --- Teacher-free-Knowledge-Distillation my_loss_function.py: loss_kd_self --
def tf_kd_self(t, c):
    outputs = t["z"].clone().requires_grad_()
    labels = t["y"]
    teacher_outputs = t["zt"]  # Variable(output_teacher_batch, requires_grad=False)
    alpha = c["alpha"]
    T = c["temperature"]
    reduction = {"element_mean": "mean", "batch_mean": "batchmean"}[c["kl_reduction"]]
    loss_CE = F.cross_entropy(outputs, labels)
    D_KL = nn.KLDivLoss(reduction=reduction)(
        F.log_softmax(outputs / T, dim=1), F.softmax(teacher_outputs / T, dim=1)
    ) * (T * T) * c["multiplier"]
    KD_loss = (1.0 - alpha) * loss_CE + alpha * D_KL
    KD_loss.backward()
    return {
        "ce": ((1.0 - alpha) * loss_CE).detach(),
        "kl": (alpha * D_KL).detach(),
        "total": KD_loss.detach(),
        "grad": outputs.grad,
    }


# --- pytorch-be-your-own-teacher train.py -----------------------------------
def kd_loss_function(output, target_output, args):
    output = output / args["temperature"]
    output_log_softmax = torch.log_softmax(output, dim=1)
    if args["kd"] == "kl":  # variant: the KL, batch mean
        return torch.mean(torch.sum(target_output * (torch.log(target_output) - output_log_softmax), dim=1))
    loss_kd = -torch.mean(torch.sum(output_log_softmax * target_output, dim=1))
    return loss_kd


def feature_loss_function(fea, target_fea, args):
    if args["hint"] == "mse_mean":  # variant
        return ((fea - target_fea) ** 2).mean()
    loss = (fea - target_fea) ** 2 * ((fea > 0) | (target_fea > 0)).float()
    return torch.abs(loss).sum()


def byot(t, c):
    output = t["z"].clone().requires_grad_()
    middle = [t[f"z{i}"].clone().requires_grad_() for i in (1, 2, 3)]
    final_fea = t["h"]
    middle_fea = [t[f"h{i}"] for i in (1, 2, 3)]
    target = t["y"]
    criterion = nn.CrossEntropyLoss()
    T, alpha, beta = c["temperature"], c["alpha"], c["beta"]
    loss = criterion(output, target)
    middle1_loss = criterion(middle[0], target)
    middle2_loss = criterion(middle[1], target)
    middle3_loss = criterion(middle[2], target)
    temp4 = output / T
    temp4 = torch.softmax(temp4, dim=1)
    loss1by4 = kd_loss_function(middle[0], temp4.detach(), c) * (T**2)
    loss2by4 = kd_loss_function(middle[1], temp4.detach(), c) * (T**2)
    loss3by4 = kd_loss_function(middle[2], temp4.detach(), c) * (T**2)
    feature_loss_1 = feature_loss_function(middle_fea[0], final_fea.detach(), c)
    feature_loss_2 = feature_loss_function(middle_fea[1], final_fea.detach(), c)
    feature_loss_3 = feature_loss_function(middle_fea[2], final_fea.detach(), c)
    ce = (1 - alpha) * (loss + middle1_loss + middle2_loss + middle3_loss)
    kd = alpha * (loss1by4 + loss2by4 + loss3by4)
    hint = beta * (feature_loss_1 + feature_loss_2 + feature_loss_3)
    total_loss = ce + kd + hint
    total_loss.backward()
    grad = torch.cat([output.grad] + [m.grad for m in middle], 0)
    return {"ce": ce.detach(), "kd": kd.detach(), "hint": hint.detach(), "total": total_loss.detach(), "grad": grad}


METHODS = {"tf_kd_self": tf_kd_self, "byot": byot, "cs_kd": cs_kd, "ps_kd": ps_kd, "tf_kd_reg": tf_kd_reg, "label_smoothing": label_smoothing, "ddgsd": ddgsd}


def main():
    inputs, cases, out = sys.argv[1:4]
    t = load_file(inputs)
    cases = json.load(open(cases))
    result = {}
    for case in cases:
        name = case["name"]
        mine = {k.split(".", 1)[1]: v for k, v in t.items() if k.startswith(name + ".")}
        for k, v in METHODS[case["method"]](mine, case).items():
            v = v.reshape(1) if v.dim() == 0 else v
            result[f"{name}.{k}"] = v.to(torch.float32).clone().contiguous()
    save_file(result, out)


if __name__ == "__main__":
    main()

# img2pose's recipe (docs/reference.md §5): SGD, gradient clipping at 10, the learning rate divided by
# 10 when the validation loss plateaus, early stopping, up to 100 epochs, seed 42.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100, val_interval=1)
val_cfg = dict(type='ValLossLoop')      # adds the validation losses to the metrics
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4),
    clip_grad=dict(max_norm=10, norm_type=2))

param_scheduler = [
    dict(
        type='ReduceOnPlateauLR',
        monitor='loss',                 # the total validation loss from ValLossLoop
        rule='less',
        factor=0.1,
        patience=3,
        threshold=1e-3,
        threshold_rule='rel',
        cooldown=1,
        min_value=1e-5,
        by_epoch=True)
]

custom_hooks = [
    dict(type='EarlyStoppingHook', monitor='loss', rule='less', min_delta=0.0, patience=5)
]

# the original trains with 2 images per GPU on 4 GPUs
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=42)
